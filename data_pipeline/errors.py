"""The error raised for every bad input found by `data_pipeline`."""


class DataError(Exception):
  """Bad input data: a missing, unreadable or inconsistent file or folder.

  The message names the offending file or sequence and says what is wrong,
  so command-line tools can print it as is (`error: <message>`).
  """
