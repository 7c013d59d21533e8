"""A consortium of institutions: its configuration, keys, signed control messages, policy,
broker, the requester's client and each party's daemon."""
