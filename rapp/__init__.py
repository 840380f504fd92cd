"""The Non-RT rApp: KPM history, retraining, A1 policy management, forecasts and reports."""
