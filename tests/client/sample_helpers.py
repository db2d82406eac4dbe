"""A helper module that sample_custom imports with a relative import."""

import re


def tokenize(text):
    return re.findall(r"[a-z]+", text.lower())
