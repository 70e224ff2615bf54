"""Gen-0 language-model scores: perplexity, Fast-DetectGPT, two-model contrast."""
