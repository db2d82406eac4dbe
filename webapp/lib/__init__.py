"""Pure helpers with no Django imports: settings parsing, key formats, embedded services."""
