"""Data: corpus sources → documents → splits → token files → packed training rows."""
