"""One way to write dates and times on every page, the admin included: "6 Dec 2026" and
"6 Dec 2026, 01:26" (24-hour clock). Django's English defaults ("Dec. 6, 2026, 1:26 a.m.")
are replaced here; the time zone a value is shown in is settings' business, not this file's.
"""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
TIME_FORMAT = "H:i"
MONTH_DAY_FORMAT = "j M"
YEAR_MONTH_FORMAT = "M Y"
