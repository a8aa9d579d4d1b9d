-- file: market
-- Time-weighted vs plain average price per symbol, hourly.
SELECT time_bucket('1h', ts) AS hour, symbol, twap(value), avg(value), count(*)
FROM trade_price WHERE symbol IN ('AAPL', 'JPM')
GROUP BY hour, symbol ORDER BY symbol, hour
