package northbound

// AppendJSON exposes the fast list encoder to the tests.
var AppendJSON = appendJSON

// ValidText exposes the request body's text check to the benchmarks.
var ValidText = validText

// FirstFree exposes the subnet pool prefix search to the benchmarks.
var FirstFree = firstFree
