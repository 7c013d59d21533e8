"""Joint training: alignment, binning statistics, logistic regression, DP, ledger."""
