package northbound

// AppendJSON exposes the fast list encoder to the tests.
var AppendJSON = appendJSON

// ValidText exposes the request body's text check to the benchmarks.
var ValidText = validText
