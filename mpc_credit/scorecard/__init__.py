"""The scorecard: the model file, optbinning import, institution data, reveal policies and the
plaintext reference scorer. No MPC, no network."""
