"""The secure computation of a scoring session, arrays in and arrays out: the public plan, each
party's local inputs, the protocol, the top-k network for reason codes, and the MPyC runtime
(with its faster sampling and the links a long-lived process needs). No file paths, no sockets
of its own making."""
