"""
One test method, several cases: trial-style ``TestCase`` classes cannot take
pytest's ``parametrize``, so a method marked with :func:`cases` is replaced,
by the class decorator :func:`with_cases`, with one method per case.  Each
case is then its own test: counted, selected (``-k``) and reported by its
own name, ``test_NAME_CASEID``, with the template's docstring.
"""

import functools
import re

__all__ = ["cases", "with_cases"]


def _case_id(arguments):
    """
    :param tuple arguments: One case's arguments.
    :return: A short readable name for them (for use after an index).
    """
    return "_".join(ascii(argument)[:20] for argument in arguments)


def cases(arguments, ids=None):
    """
    Mark a test method to be run once for each of ``arguments``.

    :param arguments: An iterable of tuples, each the extra positional
        arguments of one run of the method.
    :param ids: The cases' names (an iterable as long as ``arguments``), or
        ``None`` to name them ``INDEX_REPR``.
    :return: A decorator recording the cases on the method; the class must
        be decorated with :func:`with_cases`.
    :raises ValueError: When a case is not a tuple, or ``ids`` does not
        name each case once.
    """
    arguments = list(arguments)
    for case in arguments:
        if not isinstance(case, tuple):
            raise ValueError("a case is a tuple of arguments: %r" % (case,))
    if ids is None:
        ids = ["%d_%s" % (index, _case_id(case))
               for index, case in enumerate(arguments)]
    ids = [re.sub(r"[\W_]+", "_", str(name)).strip("_") for name in ids]
    if len(ids) != len(arguments) or len(set(ids)) != len(ids):
        raise ValueError("each case needs its own name: %r" % (ids,))

    def mark(method):
        method.flocker_cases = list(zip(ids, arguments))
        return method
    return mark


def _one_case(method, arguments):
    """
    :return: A test method running ``method`` with ``arguments``.
    """
    @functools.wraps(method)
    def run(self):
        return method(self, *arguments)
    del run.flocker_cases
    return run


def with_cases(cls):
    """
    Replace each method of ``cls`` marked with :func:`cases` by one method
    per case, named ``NAME_CASEID``.

    :param type cls: A ``TestCase`` class.
    :return: ``cls``, changed.
    :raises ValueError: When a generated name is already taken.
    """
    for name, method in list(vars(cls).items()):
        marked = getattr(method, "flocker_cases", None)
        if marked is None:
            continue
        delattr(cls, name)
        for case_id, arguments in marked:
            generated = "%s_%s" % (name, case_id)
            if generated in vars(cls):
                raise ValueError("%s already exists" % (generated,))
            run = _one_case(method, arguments)
            run.__name__ = run.__qualname__ = generated
            setattr(cls, generated, run)
    return cls
