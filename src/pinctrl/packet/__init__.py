"""Pure frame code usable from any thread: headers, checksums, flow
extraction and formatting, option builders."""
