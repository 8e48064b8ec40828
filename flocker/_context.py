"""
Keeping eliot's action context across Deferred callbacks.

Work started from a Deferred callback runs outside the action that set it
up, so its own actions would start trees of their own in the log.  Wrapping
the callback with :func:`in_current_action` when it is added keeps them in
place.
"""

from eliot import current_action

__all__ = ["in_current_action"]


def in_current_action(function):
    """
    :param function: Any callable (typically a Deferred callback).
    :return: ``function``, made to run in the eliot action that is current
        now (``function`` itself if there is none).
    """
    action = current_action()
    if action is None:
        return function

    def in_action(*args, **kwargs):
        with action.context():
            return function(*args, **kwargs)
    return in_action
