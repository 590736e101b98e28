"""`arpo`: the command-line client of ARPO Studio. It talks only to the REST API, with a token."""
