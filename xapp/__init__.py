"""The Near-RT xApp: E2 client, per-cell state, ONNX scoring, A1 policies, incidents, shared data layer."""
