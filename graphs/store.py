"""The server's store (``langgraph.json``: ``"store": {"path": "./graphs/store.py:store"}``).

The same AdapterStore object the graphs write their adapters to, so the server's store API lists
them. An async function: the server awaits it when it opens its store, and the model loads in a
worker thread, off the server's event loop.
"""

from agenthn_langgraph.studio import adapter_store_for_server as store

__all__ = ["store"]
