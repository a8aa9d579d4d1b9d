-- file: market
-- OHLCV bars of 1 minute from trades (volume from trade_size).
SELECT * FROM ohlcv(trade_price, '1m') WHERE symbol = 'AAPL' LIMIT 5
