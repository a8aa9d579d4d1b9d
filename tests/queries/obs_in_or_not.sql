-- IN, OR and NOT over labels and values; ORDER BY a value, then time.
SELECT ts, host, value FROM node_temperature_celsius
WHERE (host IN ('db-01', 'cache-01') OR host = 'web-01')
  AND NOT value < 45
ORDER BY value DESC, ts LIMIT 8
