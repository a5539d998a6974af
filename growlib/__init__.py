"""growlib: train a dense GPT, upcycle it into a MoE, grow it wider and deeper."""
