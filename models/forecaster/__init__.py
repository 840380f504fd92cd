"""LSTM forecaster of every KPM measurement H periods ahead, one model for all cells (seen or not).

Design:
- Input: the last W periods of one cell (raw values [W, K], a mask of present values, since no value is
  not zero) and sin/cos time-of-day and time-of-week features of the W history and H forecast periods.
- Normalisation, inside the network and so inside the ONNX graph: log1p for measurements that are never
  negative in the training data (all but SINR in dB), then per window and measurement the masked mean
  (centre) and standard deviation (scale, floored at a fifth of the typical training window's) of the
  transformed history. Cells of 10 or 600 UEs look alike after it, so unseen cells work.
- Network: an LSTM over patches of P periods (normalised values and masks, plus the patch's time), whose
  last state, the window's standardised centre and log scale (how big and how noisy the cell is) and the
  horizon's time features feed an MLP head giving H x K normalised forecasts; these are mapped back to raw
  units (expm1, clamped at 0, for log measurements).
- Training: L1 loss in the normalised space (its optimum, the conditional median, survives the monotone
  transform, so it also serves raw-unit MAE), missing targets masked out; (cell, origin) windows sampled
  at random each epoch; a share of histories get an artificial gap of missing values; AdamW with a
  one-cycle schedule; deterministic for a seed and thread count.

Modules (torch is imported only by training, network and export, so ONNX inference needs none):
- config: ForecasterConfig.
- features: time_features, prepare_inputs (histories to ModelInputs), INPUT_NAMES, OUTPUT_NAMES.
- training: train_forecaster -> Forecaster (predict, run).
- export: export_onnx (one self-contained file, dynamic batch, metadata).
- runtime: OnnxForecaster (ONNX Runtime; the same predict and run).
- evaluation: evaluate_forecaster against seasonal naive and persistence (MAE, nMAE, sMAPE).

ONNX graph: inputs values, mask float32 [B, W, K] and time_features float32 [B, W + H, 4]; outputs
forecast [B, H, K] (raw units), forecast_norm [B, H, K], center and scale [B, K] (see features).
"""
