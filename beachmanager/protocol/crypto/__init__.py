"""Sans-I/O secure signaling and secure transport: sealing, Noise XX, challenge, encrypted channel."""
