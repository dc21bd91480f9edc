"""pinctrl_handler thread only: dispatch, buffered packets, periodic jobs.
Nothing here is touched by the main thread; nothing here touches the IDL."""
