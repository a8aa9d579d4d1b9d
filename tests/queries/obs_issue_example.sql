-- The example query of the issue: label, time and value conditions,
-- a 5-minute time bucket, several aggregates, ORDER BY ... DESC, LIMIT.
SELECT time_bucket('5m', ts) AS t, host, avg(value), max(value)
FROM cpu_usage_percent
WHERE region = 'eu-west-1' AND ts >= '2024-01-01T00:20:00Z' AND value > 20
GROUP BY t, host ORDER BY t DESC LIMIT 10
