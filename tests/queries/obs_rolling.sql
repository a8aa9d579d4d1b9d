-- A rolling mean over the last 4 samples of one series.
SELECT ts, value, rolling FROM rolling(cpu_usage_percent, 'mean', 4)
WHERE host = 'api-01' LIMIT 6
