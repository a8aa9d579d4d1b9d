-- file: market
-- Total traded size per symbol and side (side is 1 for buys, -1 for sells).
SELECT symbol, sum(value), count(*) FROM trade_size GROUP BY symbol ORDER BY 2 DESC LIMIT 5
