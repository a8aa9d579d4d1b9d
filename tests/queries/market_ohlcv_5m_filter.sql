-- file: market
-- 5-minute bars of two symbols, only bars that closed above 400.
SELECT ts, symbol, open, close, volume FROM ohlcv(trade_price, '5m', trade_size)
WHERE symbol IN ('MSFT', 'NVDA') AND close > 400
ORDER BY ts, symbol LIMIT 6
