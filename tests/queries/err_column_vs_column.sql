-- file: market
-- Comparing two columns is outside the subset, and the error says so.
SELECT * FROM ohlcv(trade_price, '5m') WHERE close > open
