"""
Keeping eliot's action context across Deferred callbacks.

Work started from a Deferred callback runs outside the action that set it
up, so its own actions would start trees of their own in the log.  Wrapping
the callback with :func:`in_current_action` when it is added keeps them in
place.
"""

from eliot import Action, current_action

__all__ = ["in_current_action", "continued_task", "BadTaskId"]


class BadTaskId(ValueError):
    """
    A serialised eliot task id given on a command line is not one.

    ``str()`` is the one line to show.
    """


def continued_task(task_id):
    """
    :param str task_id: A serialised eliot task id (``UUID@/1/2``), as a
        caller passes it (``--eliot-task``).
    :return: The ``Action`` continuing that task.
    :raises BadTaskId: If ``task_id`` is not a serialised task id.
    """
    try:
        return Action.continue_task(task_id=task_id)
    except (ValueError, TypeError, AttributeError):
        raise BadTaskId("--eliot-task %r is not a serialised eliot task" % (
            task_id,))


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
