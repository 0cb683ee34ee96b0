const http = require("http");
const port = process.env.PORT || 5000;
http.createServer((req, res) => res.end("Hello World!\n")).listen(port, () => console.log(`listening on ${port}`));
