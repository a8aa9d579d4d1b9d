-- Unsupported SQL says what is unsupported.
SELECT * FROM cpu_usage_percent a JOIN up b ON a.ts = b.ts
