-- A time literal that is not a UTC timestamp.
SELECT * FROM up WHERE ts > '2024-01-01T00:00:00+02:00'
