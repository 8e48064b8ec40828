"""
Text as Flocker shows it to an operator: one line.
"""

__all__ = ["one_line"]


def one_line(text):
    """
    :param text: A message (or anything ``str`` turns into one), possibly
        over several lines or with runs of spaces.
    :return: Its words on one line, separated by single spaces.
    """
    return " ".join(str(text).split())
