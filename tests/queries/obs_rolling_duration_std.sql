-- A rolling standard deviation over one minute, after a time filter.
SELECT ts, value, rolling FROM rolling(cpu_usage_percent, 'std', '1m')
WHERE host = 'db-01' AND ts >= '2024-01-01T00:30:00Z' LIMIT 5
