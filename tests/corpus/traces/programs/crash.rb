# A greeting for a user who is not there.
def find_user(users, id)
  users[id]
end

def greet(users, id)
  "Hello, " + find_user(users, id).name
end

$stderr.puts "I, [2026-01-01T12:00:06.000000 #1]  INFO -- : greeter starting"
puts greet({}, 7)
