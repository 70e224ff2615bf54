"""Errors raised for bad user input; the CLI prints them as one line and exits with code 2."""


class CollapseguardError(ValueError):
    """A problem with the user's input or configuration; the message says what and how to fix it."""


def suggest(name: str, choices) -> str:
    """Return ' (did you mean X?)' when `name` is close to one of `choices`, else ''."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(kind: str, name: str, choices) -> str:
    """Return `name` if it is one of `choices`, else raise with the valid options."""
    if name not in choices:
        raise CollapseguardError(
            f"unknown {kind} {name!r}{suggest(name, choices)}; choose one of: {', '.join(sorted(choices))}"
        )
    return name
