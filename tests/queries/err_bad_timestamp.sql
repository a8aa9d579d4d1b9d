-- A time literal that is not a calendar date: 2023 is not a leap year.
SELECT * FROM up WHERE ts > '2023-02-29'
