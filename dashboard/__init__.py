"""The ops dashboard at ``/dashboard``: server-rendered pages over the domain (``copying``)."""
