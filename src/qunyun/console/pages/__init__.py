"""The console's pages, one module per area (see ``qunyun.console.app.PAGES``)."""
