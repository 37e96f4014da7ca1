"""The history stage, between the timeline and the checks: what each transaction read and
wrote, the dependency graph between committed transactions, and its cycles named and
explained (Adya's anomalies: G0, G1a, G1b, G1c, G-single, G2-item, G2, lost update).

`analyse(timeline)` is the stage's entry point; see history/model.py for the data.
"""
