"""The exceptions keras-electra raises for problems a user can fix.

Library code raises these; the command line (`keras_electra.cli`) turns them
into one `error: ...` line and an exit code, never a traceback.
"""


class InputError(ValueError):
    """A bad input, option or file, found before (or instead of) long work.

    The message names the file or field and says what to do.
    """


class DataCorruptionError(InputError):
    """A record file is damaged; the message names the file and the byte offset."""
