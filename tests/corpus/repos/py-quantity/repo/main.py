from orders import total

print(total(5, " "))
