"""The `ihas` command line, an application on top of the library and the other applications:
`ihas --version`, `ihas selfcheck`, `ihas data synth|validate|prepare`, `ihas serve`,
`ihas predict`, `ihas experiment`. Run it as `ihas` or `python -m ihas_cli`."""
