"""The machinery that runs the concepts: the three-phase pipeline and its session, resume,
the console format, the command line, the comparison, benchmarks, memory measurement and
the notebooks' helpers. The concepts themselves (config, model, moe, upcycle, grow, verify,
accounting, train, ...) live one level up, in ``growlib``.
"""
