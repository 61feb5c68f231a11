"""The handful of sentences the tiny tokenizer and documents of conftest.py are built from
(importable from any test: pytest puts tests/ on sys.path)."""

SENTENCES = [
    "今日は良い天気ですね。散歩に行きましょう。",
    "東京の桜は三月の終わりに咲きます。",
    "私は毎朝コーヒーを飲みながら新聞を読みます。",
    "この本はとても面白かったので、友達にも勧めました。",
    "カタカナで書かれたメニューを読むのは少し難しいです。",
    "日本語を勉強するのは楽しいけれど、漢字を覚えるのは大変です。",
    "The weather is nice today, so let's go for a walk.",
    "京都には古いお寺や神社がたくさんあります。",
]
