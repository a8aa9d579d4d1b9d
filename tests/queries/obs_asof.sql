-- As-of join: each CPU sample with the latest memory sample of the same
-- host at or before it, at most 20 seconds old.
SELECT ts, host, value, right FROM asof_join(cpu_usage_percent, memory_used_bytes, '20s')
WHERE host = 'web-01' LIMIT 5
