"""The language-model collapse world: a ground-truth synthetic language or real text, GPT-2-style
models, the generation loop, metrics and report. Heavy libraries load inside the functions."""
