package northbound

// AppendJSON exposes the fast list encoder to the tests.
var AppendJSON = appendJSON
