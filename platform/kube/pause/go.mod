module knit.local/pause

go 1.21
