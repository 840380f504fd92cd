"""e2sim: a simulator of E2 nodes (gNB-DUs and their cells) with labelled anomalies.

It imports the shared contracts package only, never an app.
"""
