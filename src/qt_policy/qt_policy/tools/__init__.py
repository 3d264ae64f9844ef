"""Command-line tools: generate data, convert bags, train, evaluate."""
