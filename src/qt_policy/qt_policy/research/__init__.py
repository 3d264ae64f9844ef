"""Research tools: baselines and ablations, teacher-forced diagnostics, training plots, parity checks, ensembles.

Not needed to record, train, evaluate or deploy; they call the same library functions as the product CLIs.
"""
