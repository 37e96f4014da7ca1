"""Where runs happen: choosing the server, the embedded server, and scratch databases."""
