"""A tiny bank: accounts and transfers between them, on PostgreSQL through psycopg2."""

SCHEMA = """
CREATE TABLE accounts (
    id int PRIMARY KEY,
    owner text NOT NULL,
    balance int NOT NULL CHECK (balance >= 0)
);
CREATE TABLE transfers (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source int NOT NULL REFERENCES accounts,
    target int NOT NULL REFERENCES accounts,
    amount int NOT NULL CHECK (amount > 0)
);
"""
