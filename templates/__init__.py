"""jinja2 templates, installed as the package ``derive.templates``.

A regular package (not a namespace one), so that ``importlib.resources.files``
gives a real folder from an installed wheel.
"""
